#pragma once
// The AWS layer's settings as the configuration gives them, in one place for every user of the
// AWS clients (aws::Clients, daemon/aws/clients.hpp: the daemon's composition root and
// `fhir-edge doctor`): the credential chain and the client (region, endpoints, addressing, proxy,
// CA bundle). daemon_clients_settings and doctor_clients_settings start from the same
// clients_settings and add only what is theirs (the daemon's bandwidth cap and connection
// budget, doctor's short timeouts), so a check by doctor talks to AWS the way the daemon does.
#include <vector>

#include "aws/client_config.hpp"
#include "aws/clients.hpp"
#include "aws/credentials.hpp"
#include "config/config.hpp"

namespace fe::pipeline {

// source and profile of aws.credentials; aws.proxy and aws.ca_bundle for STS (web identity), the
// one credential source on the public internet.
aws::CredentialsOptions credentials_options(const config::Config& cfg);

// aws.region (else the chain's region, else us-east-1), aws.endpoints, aws.s3_path_style,
// aws.proxy / no_proxy, aws.ca_bundle.
aws::ClientConfig client_config(const config::Config& cfg, const aws::CredentialsOptions& co);

// Both of the above.
aws::ClientsSettings clients_settings(const config::Config& cfg);

// upload.bandwidth_schedule in the HTTP engine's form (unlimited = 0 on both sides).
std::vector<aws::BandwidthWindow> bandwidth_windows(const config::Upload& u);

// The daemon's: clients_settings + upload.bandwidth_limit / bandwidth_schedule (changeable by a
// reload, HttpEngine::set_bandwidth) + upload.concurrency + 4 connections per endpoint (the
// parts in flight plus the importer's and the sweeps' small calls).
aws::ClientsSettings daemon_clients_settings(const config::Config& cfg);

// doctor's: clients_settings with 2 attempts, a 5 s connect and a 30 s request timeout (a check
// answers within seconds rather than retrying for minutes); no bandwidth cap.
aws::ClientsSettings doctor_clients_settings(const config::Config& cfg);

}  // namespace fe::pipeline
