// Placeholder so the config stage library exists before its code lands; remove when adding sources.
namespace fe::config {
void placeholder() {}
}  // namespace fe::config
