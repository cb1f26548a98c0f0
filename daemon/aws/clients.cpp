#include "aws/clients.hpp"

#include "aws/healthlake.hpp"
#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "aws/s3.hpp"

namespace fe::aws {

Clients::Clients(boost::asio::io_context& io, ClientsSettings settings)
    : settings_(std::move(settings)) {
  creds_ = std::make_unique<CredentialsProvider>(settings_.credentials);
  http_ = std::make_unique<HttpEngine>(io, settings_.client.http);
  caller_ = std::make_unique<AwsCaller>(*http_, settings_.client, creds_->as_function());
  s3_ = std::make_unique<S3Client>(*caller_);
  hl_ = std::make_unique<HealthLakeClient>(*caller_);
}

Clients::~Clients() {
  close();
}

void Clients::start_credentials() {
  creds_->start();
}

void Clients::close() {
  hl_.reset();
  s3_.reset();
  caller_.reset();
  http_.reset();  // aborts transfers in flight; their callbacks are not called
  if (creds_) creds_->stop();
}

}  // namespace fe::aws
