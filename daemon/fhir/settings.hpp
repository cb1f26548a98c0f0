#pragma once
// The validation settings of a pipeline (docs/configuration.md, docs/validation.md):
// pipelines[].validation_level, on_invalid, fhir_packages and max_line_bytes. They are fields of
// the pipeline's settings (pipeline/settings.hpp), flat in the YAML; none is live (validators are
// built at start).
#include <string_view>

namespace fe::fhir {

// validation_level: also the value sent to HealthLake as StartFHIRImportJob.ValidationLevel.
enum class ValidationLevel { strict, structure_only, minimal };

// on_invalid: what an invalid resource does to its file/export.
enum class OnInvalid { reject_resource, reject_file, fail_export };

}  // namespace fe::fhir
