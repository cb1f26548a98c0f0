// Stub: the real signer lands shortly; this keeps the contract linkable for aws-http/emulator.
#include "aws/sigv4.hpp"

#include <stdexcept>

namespace fe::aws {
const Header* find_header(const std::vector<Header>&, std::string_view) {
  return nullptr;
}
Signed sign(const SignableRequest&, const Credentials&, const SigningOptions&) {
  throw std::logic_error("sigv4 not implemented yet");
}
Presigned presign(const SignableRequest&, const Credentials&, const SigningOptions&,
                  std::chrono::seconds) {
  throw std::logic_error("sigv4 not implemented yet");
}
std::string_view verify_error_code(VerifyStatus, bool) {
  return "SignatureDoesNotMatch";
}
VerifyResult verify(const SignableRequest&, const SecretLookup&, const VerifyOptions&) {
  return {};
}
}  // namespace fe::aws
