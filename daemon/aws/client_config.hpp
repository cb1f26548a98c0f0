#pragma once
// Network settings of the AWS layer (the `aws:` and `upload:` config sections map onto these).
// Everything here has a safe default so a test can build a client with only `region` and an
// endpoint.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fe::aws {

// One window of the upload bandwidth schedule, in local time (minutes after local midnight).
// [from_minute, to_minute): to_minute < from_minute wraps midnight (22:00-06:00); equal values
// cover the whole day.
struct BandwidthWindow {
  int from_minute = 0;                 // 0..1439
  int to_minute = 0;                   // 0..1440
  std::uint64_t bytes_per_second = 0;  // 0 = unlimited inside the window
};

struct HttpOptions {
  // Proxy URL ("http://proxy.hospital:3128"). Unset: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (and the
  // lower-case forms) from the environment, chosen by the request's scheme. An empty string
  // disables proxies even when the environment names one.
  std::optional<std::string> proxy;
  // Hosts that bypass the proxy (curl NO_PROXY syntax). Unset: NO_PROXY / no_proxy from the
  // environment.
  std::optional<std::string> no_proxy;
  // PEM bundle of extra trust anchors, e.g. the hospital's TLS-inspection root. It replaces the
  // system store for peer verification (curl CAINFO semantics). TLS is always verified; there is
  // deliberately no option to turn verification off.
  std::optional<std::string> ca_bundle;

  std::chrono::milliseconds connect_timeout{10'000};
  // A transfer slower than low_speed_bytes_per_second for low_speed_time is aborted (timeout
  // error): flaky uplinks stall rather than fail, and a stalled part must be retried, not waited on
  // forever.
  std::uint32_t low_speed_bytes_per_second = 1;
  std::chrono::seconds low_speed_time{60};
  // Whole-request cap; 0 = none (large parts on slow links may legitimately take long).
  std::chrono::milliseconds request_timeout{0};

  // Requests in flight per endpoint (scheme://host:port); further requests wait in a FIFO queue.
  std::size_t max_per_endpoint = 8;
  // Idle connections kept for reuse.
  std::size_t max_cached_connections = 16;
  // Default limit for responses captured into memory (errors, XML, JSON). Streamed bodies (a sink)
  // are not limited by this.
  std::size_t max_response_bytes = 8u << 20;
  // Upload bandwidth cap in bytes per second shared by every request body this engine sends (one
  // token bucket for all transfers, not a per-transfer cap); 0 = unlimited. It applies outside the
  // windows of bandwidth_schedule. Changeable at run time: HttpEngine::set_bandwidth().
  std::uint64_t max_send_bytes_per_second = 0;
  // Time-of-day exceptions to max_send_bytes_per_second (e.g. full speed at night).
  std::vector<BandwidthWindow> bandwidth_schedule;
  std::string user_agent = "fhir-edge";
};

// How S3 PutObject/UploadPart payloads are signed (YAML aws.payload_signing, docs/aws-layer.md
// "Payload signing").
enum class PayloadSigning {
  // Over https, bodies larger than signed_payload_max_bytes go STREAMING-UNSIGNED-PAYLOAD-TRAILER
  // (TLS protects them in transit, the trailing CRC32C end to end); everything else, and every
  // body over plain http (where only the signature protects the bytes), is SHA-256 signed.
  automatic,
  // Every body SHA-256 signed (the payload's hash is read from the caller or computed).
  signed_payload,
  // Every PutObject/UploadPart body aws-chunked with a trailing CRC32C, http or https.
  unsigned_trailer,
};

struct ClientConfig {
  std::string region = "us-east-1";
  // Endpoint overrides ("http://127.0.0.1:4566", VPC or FIPS endpoints). Unset: the AWS endpoint
  // for the region (s3.<region>.amazonaws.com, healthlake.<region>.amazonaws.com).
  std::optional<std::string> s3_endpoint;
  std::optional<std::string> healthlake_endpoint;
  // Path-style S3 addressing (endpoint/bucket/key). Always used with a configured S3 endpoint;
  // virtual-hosted style (bucket.s3.<region>.amazonaws.com) otherwise unless forced here.
  bool s3_path_style = false;
  HttpOptions http;
  // Attempts per request including the first (AWS standard mode default is 3).
  int max_attempts = 3;
  // Payloads up to this size are hashed and the hash signed under PayloadSigning::automatic;
  // larger streamed bodies (upload parts) go STREAMING-UNSIGNED-PAYLOAD-TRAILER over https
  // (integrity from the trailing x-amz-checksum-crc32c and TLS). Over plain http every body is
  // hashed.
  std::uint64_t signed_payload_max_bytes = 1u << 20;
  PayloadSigning payload_signing = PayloadSigning::automatic;
};

}  // namespace fe::aws
