// strict: FHIR packages (StructureDefinitions with snapshots, ValueSets, CodeSystems).
#include "fhir/internal.hpp"

namespace fe::fhir {

class ProfileSet {};
void destroy_profiles(ProfileSet* p) {
  delete p;
}

ProfileSetPtr load_profiles(const std::vector<std::filesystem::path>&, const schema::Schema&,
                            LoadReport& report) {
  report.errors.push_back("strict packages not implemented yet");
  return ProfileSetPtr(nullptr, destroy_profiles);
}

void check_profiles(const ProfileSet&, const schema::Schema&, simdjson::dom::object,
                    std::string_view, Scratch::Impl&, IssueSink&) {}

}  // namespace fe::fhir
