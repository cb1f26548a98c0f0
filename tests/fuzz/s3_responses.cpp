// Fuzz target: the S3 client's response handling (aws/s3.hpp): status, headers and body of a
// response to each S3 operation, served by the test kit's loopback server (canned_reply.hpp) to
// the real S3Client (libcurl, AwsCaller signing, error typing, XML parsing of
// CreateMultipartUpload, ListParts, CompleteMultipartUpload, ListObjectsV2, error documents,
// HeadObject headers, paging loops).
// Input: byte 0 = operation, byte 1 = status, "Name: value" header lines, empty line, body.
// Checked beyond "does not crash": the callback runs exactly once, with a value or an error,
// and the paging helpers terminate on a server that answers every page the same.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "aws/s3.hpp"
#include "canned_reply.hpp"
#include "client_world.hpp"
#include "service/log.hpp"

namespace {

using World = fe::fuzz::ClientWorld<fe::aws::S3Client>;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "s3_responses fuzz: %s\n", what);
  std::abort();
}

template <class T>
void check_result(const fe::aws::S3Result<T>& r) {
  if (r.ok() == r.error.has_value()) fail("result is both ok and an error, or neither");
  (void)r.describe();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* w = [] {
    fe::log::set_level(fe::log::Level::error);  // clock-skew warnings from fuzzed Date headers
    return new World(
        &fe::aws::ClientConfig::s3_endpoint);  // lives for the process (server threads use it)
  }();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const unsigned op = size ? data[0] % 11 : 0;
  static const std::vector<unsigned> kStatuses = {200, 200, 200, 206, 400, 403,
                                                  404, 409, 412, 429, 500, 503};
  w->set_reply(fe::fuzz::split_input(in, kStatuses, op == 4));

  int calls = 0;
  auto done = [&calls](const auto& r) {
    ++calls;
    check_result(r);
  };
  std::string got;
  switch (op) {
    case 0: {
      fe::aws::CreateMultipartRequest req;
      req.bucket = "fuzz-bucket";
      req.key = "exports/a.ndjson.zst";
      w->client.create_multipart_upload(std::move(req), done);
      break;
    }
    case 1: {
      fe::aws::CompleteMultipartRequest req;
      req.bucket = "fuzz-bucket";
      req.key = "k";
      req.upload_id = "upload-1";
      req.parts = {{1, "\"e1\"", "AAAAAA=="}, {2, "\"e2\"", "AAAAAA=="}};
      w->client.complete_multipart_upload(std::move(req), done);
      break;
    }
    case 2:
      w->client.list_parts({"fuzz-bucket", "k", "upload-1", 0, 1000}, done);
      break;
    case 3:
      w->client.list_all_parts("fuzz-bucket", "k", "upload-1", done);
      break;
    case 4:
      w->client.head_object("fuzz-bucket", "k", done);
      break;
    case 5: {
      fe::aws::GetObjectRequest req{"fuzz-bucket", "k", std::nullopt, nullptr};
      req.sink = [&got](std::string_view chunk) {
        got.append(chunk);
        return true;
      };
      w->client.get_object(std::move(req), done);
      break;
    }
    case 6:
      w->client.list_objects_v2({"fuzz-bucket", "prefix/", "/", "", 1000}, done);
      break;
    case 7:
      w->client.list_all_objects({"fuzz-bucket", "prefix/", "", "", 1000}, done, 5);
      break;
    case 8: {
      static const std::string kBody = "{\"resourceType\":\"Patient\"}\n";
      fe::aws::PutObjectRequest req;
      req.bucket = "fuzz-bucket";
      req.key = "k";
      req.body = fe::aws::BodySource::from_view(kBody);
      req.crc32c = 0x12345678;
      w->client.put_object(std::move(req), done);
      break;
    }
    case 9: {
      static const std::string kBody(1024, 'x');
      fe::aws::UploadPartRequest req;
      req.bucket = "fuzz-bucket";
      req.key = "k";
      req.upload_id = "upload-1";
      req.part_number = 3;
      req.body = fe::aws::BodySource::from_view(kBody);
      w->client.upload_part(std::move(req), done);
      break;
    }
    default:
      w->client.abort_multipart_upload("fuzz-bucket", "k", "upload-1", done);
      break;
  }
  w->io.restart();
  while (calls == 0)
    if (w->io.run_one() == 0) fail("the io_context ran out of work before the callback ran");
  // Let anything the call left behind run; a second callback would show up here.
  w->io.poll();
  if (calls != 1) fail("callback ran more than once");
  return 0;
}
