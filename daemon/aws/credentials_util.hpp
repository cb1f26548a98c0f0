#pragma once
// Small helpers shared by the credential sources (credentials_sources.cpp: environment, shared
// files, credential_process, systemd; credentials_endpoints.cpp: container endpoint, IMDSv2, web
// identity). Private to daemon/aws.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "aws/credentials.hpp"

namespace fe::aws::cred_detail {

// s without leading and trailing blanks (space, tab, CR, LF).
std::string trim(std::string_view s);
// The variable's value, nullopt when unset or empty.
std::optional<std::string> env_nonempty(const EnvLookup& env, std::string_view name);
// "true" or "1", in any case.
bool env_true(const EnvLookup& env, std::string_view name);
// Reads a small file; nullopt when it does not exist; throws CredentialsError when it exists but
// cannot be read or is larger than limit.
std::optional<std::string> read_small_file(const std::string& path, std::size_t limit = 1 << 20);

}  // namespace fe::aws::cred_detail
