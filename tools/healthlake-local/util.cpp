#include "util.hpp"
#include "aws/xml.hpp"
#include "common/hashing.hpp"

#include <isa-l/crc.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

namespace fe::hll {

std::string base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (char c : text)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '='))
      return std::nullopt;
  std::string out(text.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  if (!text.empty() && text.back() == '=') --len;
  if (text.size() > 1 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}

uint32_t crc32(std::string_view data, uint32_t crc) {
  return crc32_gzip_refl(crc, reinterpret_cast<const unsigned char*>(data.data()), data.size());
}

namespace {
std::string evp_digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
}  // namespace

std::string md5(std::string_view data) {
  return evp_digest(EVP_md5(), data);
}
std::string sha256(std::string_view data) {
  const auto d = fe::sha256(data);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

unsigned digest_bit(std::string_view algorithm) {
  if (algorithm == "CRC32C") return kDigestCrc32c;
  if (algorithm == "CRC32") return kDigestCrc32;
  if (algorithm == "SHA256") return kDigestSha256;
  return 0;
}

struct DigestStream::Impl {
  unsigned which;
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md5{nullptr};
  std::optional<fe::Sha256> sha;
  Digests d;
};

DigestStream::DigestStream(unsigned which) : impl_(std::make_unique<Impl>()) {
  impl_->which = which;
  impl_->d.have = which;
  if (which & kDigestMd5) {
    impl_->md5.reset(EVP_MD_CTX_new());
    if (!impl_->md5 || EVP_DigestInit_ex(impl_->md5.get(), EVP_md5(), nullptr) != 1)
      throw std::runtime_error("MD5 unavailable");
  }
  if (which & kDigestSha256) impl_->sha.emplace();
}
DigestStream::~DigestStream() = default;

void DigestStream::update(const char* data, size_t n) {
  Impl& m = *impl_;
  m.d.size += n;
  // Every digest over one 64 KiB block before the next block: the bytes are read from memory
  // once, then from L1/L2 by the other digests.
  while (n > 0) {
    const size_t k = std::min<size_t>(n, 64 * 1024);
    std::string_view chunk(data, k);
    if (m.md5) EVP_DigestUpdate(m.md5.get(), data, k);
    if (m.sha) m.sha->update(chunk);
    if (m.which & kDigestCrc32c) m.d.crc32c = crc32c(chunk, m.d.crc32c);
    if (m.which & kDigestCrc32) m.d.crc32 = crc32(chunk, m.d.crc32);
    data += k;
    n -= k;
  }
}

Digests DigestStream::final() {
  Impl& m = *impl_;
  if (m.md5) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(m.md5.get(), out, &len);
    m.d.md5.assign(reinterpret_cast<char*>(out), len);
  }
  if (m.sha) {
    const auto sha = m.sha->final_digest();
    m.d.sha256.assign(reinterpret_cast<const char*>(sha.data()), sha.size());
  }
  return m.d;
}

Digests digest_file(const std::filesystem::path& path, unsigned which) {
  DigestStream ds(which);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw std::runtime_error("cannot open " + path.string());
  std::vector<char> buf(1 << 18);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) ds.update(buf.data(), n);
  if (std::ferror(f.get())) throw std::runtime_error("cannot read " + path.string());
  return ds.final();
}

std::string xml_escape(std::string_view s) {
  return fe::aws::xml::escape(s);
}

std::string url_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      auto val = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      int h = val(s[i + 1]), l = val(s[i + 2]);
      if (h >= 0 && l >= 0) {
        out.push_back(static_cast<char>(h * 16 + l));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

std::string url_encode(std::string_view s, bool keep_slash) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}

std::string iso8601_ms(SysTime t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char b[96];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return b;
}

std::string http_date(SysTime t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char b[64];
  std::strftime(b, sizeof b, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return b;
}

double epoch_seconds(SysTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  return hex(raw);
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    if (!o) throw std::runtime_error("cannot write " + tmp.string());
    o.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!o) throw std::runtime_error("cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, path);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream i(path, std::ios::binary);
  if (!i) throw std::runtime_error("cannot read " + path.string());
  return std::string(std::istreambuf_iterator<char>(i), {});
}

}  // namespace fe::hll
