// Placeholder so the fhir stage library exists before its code lands; remove when adding sources.
namespace fe::fhir {
void placeholder() {}
}  // namespace fe::fhir
