// Placeholder so the journal stage library exists before its code lands; remove when adding
// sources.
namespace fe::journal {
void placeholder() {}
}  // namespace fe::journal
