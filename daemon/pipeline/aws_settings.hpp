#pragma once
// The AWS layer's settings as the configuration gives them, in one place for every user of the
// AWS clients (the daemon's pipeline, `fhir-edge doctor`): the credential chain and the client
// (region, endpoints, addressing, proxy, CA bundle). Callers add what is theirs (the daemon's
// bandwidth cap, doctor's short timeouts).
#include "aws/client_config.hpp"
#include "aws/credentials.hpp"
#include "config/config.hpp"

namespace fe::pipeline {

// source and profile of aws.credentials.
aws::CredentialsOptions credentials_options(const config::Config& cfg);

// aws.region (else the chain's region, else us-east-1), aws.endpoints, aws.s3_path_style,
// aws.proxy / no_proxy, aws.ca_bundle.
aws::ClientConfig client_config(const config::Config& cfg, const aws::CredentialsOptions& co);

}  // namespace fe::pipeline
