#pragma once
// aws::Clients: the AWS layer assembled once, the same way for every user (the daemon's
// composition root, daemon/app/, and `fhir-edge doctor`): the credential chain, the HTTP engine
// (proxy, CA bundle, bandwidth cap), the SigV4 signer with retry and clock-skew handling
// (AwsCaller), and the S3 and HealthLake clients on top of it.
//
// The settings come from one translation of the config (pipeline/aws_settings.hpp:
// daemon_clients_settings, doctor_clients_settings); this class does not read the config.
//
// Lifetime: the constructor builds everything but resolves no credentials (start_credentials()
// does, and may throw: the daemon logs and goes on spooling, doctor reports it). close() (or the
// destructor) tears down in dependency order: the clients, the caller, the engine (transfers in
// flight are aborted without callbacks), then the credential refresh thread.
// Threading: the engine and the clients belong to the io_context's thread (aws/http.hpp).
#include <memory>

#include <boost/asio/io_context.hpp>

#include "aws/client_config.hpp"
#include "aws/credentials.hpp"

namespace fe::aws {

class HttpEngine;
class AwsCaller;
class S3Client;
class HealthLakeClient;

struct ClientsSettings {
  CredentialsOptions credentials;
  ClientConfig client;
};

class Clients {
 public:
  Clients(boost::asio::io_context& io, ClientsSettings settings);
  ~Clients();
  Clients(const Clients&) = delete;
  Clients& operator=(const Clients&) = delete;

  // Resolves credentials once and starts their refresh (CredentialsProvider::start): throws
  // CredentialsError when the chain finds none. Every signed request asks the chain again, so a
  // caller that goes on without credentials gets them once they appear.
  void start_credentials();
  // Tears everything down (idempotent); the accessors below must not be used afterwards.
  void close();

  const ClientsSettings& settings() const { return settings_; }
  CredentialsProvider& credentials() { return *creds_; }
  HttpEngine& http() { return *http_; }
  AwsCaller& caller() { return *caller_; }
  S3Client& s3() { return *s3_; }
  HealthLakeClient& healthlake() { return *hl_; }

 private:
  ClientsSettings settings_;
  std::unique_ptr<CredentialsProvider> creds_;
  std::unique_ptr<HttpEngine> http_;
  std::unique_ptr<AwsCaller> caller_;
  std::unique_ptr<S3Client> s3_;
  std::unique_ptr<HealthLakeClient> hl_;
};

}  // namespace fe::aws
