// Placeholder so the pipeline stage library exists before its code lands; remove when adding
// sources.
namespace fe::pipeline {
void placeholder() {}
}  // namespace fe::pipeline
