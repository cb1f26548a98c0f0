// Placeholder so the spool stage library exists before its code lands; remove when adding sources.
namespace fe::spool {
void placeholder() {}
}  // namespace fe::spool
