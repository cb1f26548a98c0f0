// Placeholder so the watch stage library exists before its code lands; remove when adding sources.
namespace fe::watch {
void placeholder() {}
}  // namespace fe::watch
