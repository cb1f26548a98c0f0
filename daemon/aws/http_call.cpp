#include "aws/http_call.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <vector>

#include "aws/aws_chunked.hpp"
#include "common/hashing.hpp"
#include "metrics/counters.hpp"
#include "service/log.hpp"

namespace fe::aws {

namespace {

constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// Hashes a streamed body by reading it once; the source is rewound afterwards.
std::optional<std::string> hash_source(BodySource& src) {
  if (!src.rewind || !src.rewind()) return std::nullopt;
  fe::Sha256 sha;
  std::vector<char> buf(256 * 1024);
  std::uint64_t total = 0;
  bool ok = true;
  for (;;) {
    auto n = src.read(std::span<char>(buf.data(), buf.size()));
    if (n < 0) {
      ok = false;
      break;
    }
    if (n == 0) break;
    sha.update(buf.data(), static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
  }
  if (!ok || total != src.size || !src.rewind()) return std::nullopt;
  return sha.final_hex();
}

AwsError local_error(ErrorCategory category, std::string message) {
  AwsError e;
  e.category = category;
  e.message = std::move(message);
  return e;
}

// Lifetime a credential must still have when a request is signed: enough to send the body on a
// slow link (a 64 MiB part at 256 KiB/s is ~4 minutes), so it cannot expire mid-request.
std::chrono::seconds needed_lifetime(std::uint64_t body_bytes) {
  auto s = std::chrono::seconds(60 + static_cast<long long>(body_bytes / (256 * 1024)));
  return std::min(s, std::chrono::seconds(15 * 60));
}

// The `code` label of fhir_edge_aws_errors_total / _retries_total: the AWS error code when the
// server sent one, else what kind of failure it was. Server-sent codes are reduced to a safe
// alphabet and length (the registry also caps how many distinct codes it keeps).
std::string error_code_label(const AwsError& e) {
  if (!e.code.empty()) {
    std::string out;
    for (char ch : e.code.substr(0, 64)) {
      const bool safe = std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
                        ch == '-' || ch == ':';
      out += safe ? ch : '_';
    }
    return out;
  }
  if (e.transport == TransportFailure::timeout) return "Timeout";
  if (e.transport == TransportFailure::connection) return "ConnectionError";
  if (e.http_status != 0) return "HTTP" + std::to_string(e.http_status);
  return "Local." + std::string(to_string(e.category));
}

// True when an HTTP Date is more than ClockSkew::kThreshold away from `clock`.
bool skewed_against(std::string_view http_date, std::chrono::system_clock::time_point clock) {
  if (http_date.empty()) return false;
  auto server = parse_http_date(http_date);
  if (!server) return false;
  const auto diff = std::chrono::abs(*server - clock);
  return diff >= ClockSkew::kThreshold;
}

void count_failure(std::string_view metric, const std::string& service, const AwsError& e) {
  fe::metrics::count(metric, {{"service", service}, {"code", error_code_label(e)}});
}

}  // namespace

std::string CallResult::describe() const {
  if (!error) return description + ": ok";
  return description + ": " + error->describe() + ", " + std::to_string(attempts) + " attempt(s)";
}

CredentialsFn static_credentials(Credentials creds) {
  return [creds](std::chrono::seconds, bool) -> std::optional<Credentials> { return creds; };
}

std::optional<ParsedUrl> parse_endpoint(std::string_view url) {
  ParsedUrl p;
  auto sep = url.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  p.scheme = std::string(url.substr(0, sep));
  for (auto& c : p.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (p.scheme != "http" && p.scheme != "https") return std::nullopt;
  auto rest = url.substr(sep + 3);
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  if (slash != std::string_view::npos && rest.substr(slash) != "/") return std::nullopt;
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  auto colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    p.host = std::string(authority.substr(0, colon));
    p.port = std::string(authority.substr(colon + 1));
    if (p.port.empty() || !std::all_of(p.port.begin(), p.port.end(), ::isdigit))
      return std::nullopt;
    if ((p.scheme == "http" && p.port == "80") || (p.scheme == "https" && p.port == "443"))
      p.port.clear();  // curl sends Host without a default port; sign what is sent
  } else {
    p.host = std::string(authority);
  }
  if (p.host.empty()) return std::nullopt;
  return p;
}

struct AwsCaller::Op {
  Op(boost::asio::io_context& io, AwsCall c, std::function<void(CallResult)> d)
      : call(std::move(c)), done(std::move(d)), timer(io) {}
  AwsCall call;
  std::function<void(CallResult)> done;
  RetryState state;
  int attempts = 0;
  bool refreshed = false;  // credentials force-refreshed once after an expired-token error
  std::string payload_hash;
  std::uint64_t sink_bytes = 0;
  bool sent = false;  // the body source was handed to curl at least once
  // Clock offset the latest attempt was signed with: a 401/403 is judged against the clock the
  // request carried, not the offset another request may have corrected meanwhile.
  std::chrono::milliseconds signed_offset{0};
  bool skew_retried = false;  // the one re-sign after the offset moved under this request
  boost::asio::steady_timer timer;
};

AwsCaller::AwsCaller(HttpEngine& http, ClientConfig config, CredentialsFn credentials,
                     std::shared_ptr<RetryStrategy> retry, std::shared_ptr<ClockSkew> skew)
    : http_(http),
      config_(std::move(config)),
      credentials_(std::move(credentials)),
      retry_(std::move(retry)),
      skew_(std::move(skew)) {
  if (!retry_) {
    RetryConfig rc;
    rc.max_attempts = std::max(1, config_.max_attempts);
    retry_ = std::make_shared<RetryStrategy>(rc);
  }
  if (!skew_) skew_ = std::make_shared<ClockSkew>();
}

void AwsCaller::call(AwsCall call, std::function<void(CallResult)> done) {
  auto op = std::make_shared<Op>(http_.io(), std::move(call), std::move(done));
  auto& c = op->call;
  if (c.crc32c_trailer && c.source) {
    // Wrapped once: every attempt rewinds the same encoder, so a retry sends the same bytes.
    const std::uint64_t decoded = c.source->size;
    c.headers.push_back({"content-encoding", "aws-chunked"});
    c.headers.push_back({"x-amz-decoded-content-length", std::to_string(decoded)});
    c.headers.push_back({"x-amz-trailer", std::string(kCrc32cTrailer)});
    c.source = aws_chunked_body(std::move(*c.source), c.trailer_crc32c);
    op->payload_hash = std::string(kStreamingUnsignedTrailer);
  }
  attempt(std::move(op));
}

void AwsCaller::attempt(std::shared_ptr<Op> op) {
  auto& c = op->call;
  ++op->attempts;
  auto fail = [&](AwsError err) {
    count_failure("fhir_edge_aws_errors_total", c.service, err);
    count_failure("fhir_edge_aws_failed_calls_total", c.service, err);
    CallResult r;
    r.error = std::move(err);
    r.attempts = op->attempts;
    r.description = op->call.description;
    auto done = std::move(op->done);
    done(std::move(r));
  };

  const std::uint64_t body_size = c.source ? c.source->size : c.body.size();
  std::optional<Credentials> creds;
  if (credentials_) creds = credentials_(needed_lifetime(body_size), false);
  if (!creds || !creds->valid()) {
    fail(local_error(ErrorCategory::auth, "no AWS credentials available"));
    return;
  }

  if (c.source && op->sent) {
    if (!c.source->rewind || !c.source->rewind()) {
      fail(local_error(ErrorCategory::other, "request body cannot be rewound for a retry"));
      return;
    }
  }

  if (op->payload_hash.empty()) {
    if (!c.payload_sha256.empty()) {
      op->payload_hash = c.payload_sha256;
    } else if (!c.source) {
      op->payload_hash = sha256_hex(c.body);
    } else if (c.unsigned_payload_ok) {
      op->payload_hash = std::string(kUnsignedPayload);
    } else if (auto h = hash_source(*c.source)) {
      op->payload_hash = *h;
    } else {
      fail(local_error(ErrorCategory::other, "request body could not be read for hashing"));
      return;
    }
  }

  SignableRequest sr;
  sr.method = c.method;
  sr.path = c.path;
  sr.query = c.query;
  sr.headers = c.headers;
  sr.headers.push_back({"host", c.host});
  sr.payload_hash = op->payload_hash;
  SigningOptions so;
  so.region = config_.region;
  so.service = c.service;
  op->signed_offset = skew_->offset();
  // Signed just before it is sent, on the corrected clock.
  so.time = std::chrono::system_clock::now() + op->signed_offset;
  so.s3_rules = c.s3_rules;
  so.add_content_sha256 = c.s3_rules;
  so.sign_security_token = true;
  Signed sig = sign(sr, *creds, so);

  HttpRequest req;
  req.method = c.method;
  req.url = c.base_url + c.path + (c.query.empty() ? "" : "?" + c.query);
  req.headers = std::move(sr.headers);
  for (auto& h : sig.headers_to_add) req.headers.push_back(h);
  req.body = c.body;
  req.source = c.source;
  if (c.sink) {
    std::weak_ptr<Op> weak = op;
    req.sink = [weak](std::string_view chunk) {
      auto o = weak.lock();
      if (!o) return false;
      o->sink_bytes += chunk.size();
      return o->call.sink(chunk);
    };
  }
  req.max_response_bytes = c.max_response_bytes;

  fe::metrics::count("fhir_edge_aws_requests_total", {{"service", c.service}});
  // A body that went out before (a retry, or a resend after an expired-token refresh): S3 parts
  // and objects sent again cost uplink bandwidth, so they are counted on their own.
  if (op->sent && c.method == "PUT" && body_size > 0) {
    fe::metrics::count("fhir_edge_aws_resent_requests_total", {{"service", c.service}});
    fe::metrics::count("fhir_edge_aws_resent_bytes_total", {{"service", c.service}},
                       static_cast<double>(body_size));
  }
  op->sent = true;
  std::weak_ptr<bool> alive = alive_;
  http_.submit(std::move(req), [this, alive, op](HttpResponse resp) {
    if (alive.expired()) return;
    finish(op, resp);
  });
}

void AwsCaller::finish(std::shared_ptr<Op> op, const HttpResponse& resp) {
  auto& c = op->call;
  std::optional<AwsError> err;
  if (resp.error != HttpError::none) {
    if (is_transient(resp.error)) {
      err = transport_error(
          is_timeout(resp.error) ? TransportFailure::timeout : TransportFailure::connection,
          resp.error_message);
    } else {
      err = local_error(ErrorCategory::other,
                        std::string(to_string(resp.error)) + ": " + resp.error_message);
    }
  } else if (resp.status < 200 || resp.status >= 300) {
    ErrorResponse er;
    er.http_status = static_cast<int>(resp.status);
    er.body = resp.body;
    er.request_id = resp.header("x-amz-request-id")
                        .value_or(resp.header("x-amzn-requestid").value_or(std::string_view{}));
    er.amzn_error_type = resp.header("x-amzn-errortype").value_or(std::string_view{});
    er.date = resp.header("date").value_or(std::string_view{});
    err = c.s3_rules ? parse_s3_error(er) : parse_json_error(er);
  } else if (c.check_success) {
    err = c.check_success(resp);
  }

  if (!err) {
    retry_->on_success(op->state);
    CallResult r;
    r.response = resp;
    r.attempts = op->attempts;
    r.description = c.description;
    auto done = std::move(op->done);
    done(std::move(r));
    return;
  }

  count_failure("fhir_edge_aws_errors_total", c.service, *err);

  // Rejected as expired: credentials may have been revoked or rotated early. Refresh once and
  // retry right away (this does not count against the retry budget: nothing was wrong remotely).
  const bool expired = err->code == "ExpiredToken" || err->code == "ExpiredTokenException" ||
                       err->code == "TokenRefreshRequired";
  if (expired && !op->refreshed && credentials_) {
    op->refreshed = true;
    fe::log::notice("AWS credentials rejected as expired; refreshing",
                    {{"AWS_CALL", c.description}});
    auto fresh = credentials_(std::chrono::seconds(60), true);
    if (fresh && fresh->valid()) {
      --op->attempts;
      attempt(op);
      return;
    }
  }

  const bool forbidden = err->http_status == 401 || err->http_status == 403;
  const auto local_now = std::chrono::system_clock::now();
  bool corrected = skew_->observe(*err, local_now);
  // A bodiless 401/403 (HEAD) cannot name RequestTimeTooSkewed; like the AWS SDKs, treat it as a
  // possible skew error when the server's Date is far from our corrected clock.
  if (!corrected && forbidden && !err->server_date.empty())
    corrected = skew_->update_from_date(err->server_date, local_now);
  if (forbidden && err->category != ErrorCategory::clock_skew &&
      skewed_against(err->server_date, local_now + op->signed_offset)) {
    // The Date says the time this request was signed with was off by more than AWS accepts, even
    // if another request has corrected the offset since: the 403 is the skew, not a permission.
    err->category = ErrorCategory::clock_skew;
  }
  if (forbidden && !op->skew_retried && skew_->offset() != op->signed_offset) {
    // Signed while the offset was being corrected (issue 18): re-sign once with the new offset
    // at once. This retry does not use the retry budget: it fixes our clock, not a remote fault.
    op->skew_retried = true;
    count_failure("fhir_edge_aws_retries_total", c.service, *err);
    if (observer_) observer_(RetryEvent{c.description, op->attempts, *err, {}});
    fe::log::debug("re-signing AWS call after a clock-skew correction",
                   {{"AWS_CALL", c.description}, {"ERROR", err->describe()}});
    attempt(op);
    return;
  }
  RetryDecision d = retry_->on_failure(op->state, *err, corrected);
  if (d.retry && op->sink_bytes > 0) {
    // Part of the body already went to the sink: a blind retry would duplicate it. The caller
    // resumes with a Range request from what it has.
    d.retry = false;
    d.reason = "response body partly delivered";
  }
  if (!d.retry) {
    count_failure("fhir_edge_aws_failed_calls_total", c.service, *err);
    CallResult r;
    r.response = resp;
    r.error = std::move(err);
    r.attempts = op->attempts;
    r.description = c.description;
    auto done = std::move(op->done);
    done(std::move(r));
    return;
  }
  count_failure("fhir_edge_aws_retries_total", c.service, *err);
  if (observer_) observer_(RetryEvent{c.description, op->attempts, *err, d.delay});
  fe::log::debug("retrying AWS call", {{"AWS_CALL", c.description},
                                       {"ERROR", err->describe()},
                                       {"DELAY_MS", std::to_string(d.delay.count())}});
  op->timer.expires_after(d.delay);
  std::weak_ptr<bool> alive = alive_;
  op->timer.async_wait([this, alive, op](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    attempt(op);
  });
}

}  // namespace fe::aws
