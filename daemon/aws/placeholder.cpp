// Placeholder so the aws stage library exists before its code lands; remove when adding sources.
namespace fe::aws {
void placeholder() {}
}  // namespace fe::aws
