// The `aws` section (aws/settings.hpp).
#include "config/readers.hpp"

namespace fe::config::detail {

void read_aws(Checker& c, const YAML::Node& n, YAML::Mark at, Aws& aws) {
  Map m(c, n, "aws", at,
        {"region", "credentials", "profile", "endpoints", "s3_path_style", "proxy", "no_proxy",
         "ca_bundle", "payload_signing"});
  if (!m.ok()) {
    return;
  }
  c.opt_string(m, "region", aws.region, [](const std::string& r) -> std::string {
    if (matches(r, "[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")) {
      return "";
    }
    return "expected an AWS region such as us-east-1, got '" + r + "'";
  });
  if (const Item* it = m.get("credentials")) {
    Map cm(c, it->value, it->path, it->mark, {"source"});
    if (cm.ok()) {
      c.enumeration<CredentialSource>(cm, "source", aws.credential_source,
                                      {{"auto", CredentialSource::automatic},
                                       {"env", CredentialSource::env},
                                       {"profile", CredentialSource::profile},
                                       {"process", CredentialSource::process},
                                       {"imds", CredentialSource::imds},
                                       {"container", CredentialSource::container},
                                       {"systemd", CredentialSource::systemd}});
    }
  }
  c.opt_string(m, "profile", aws.profile, [](const std::string& p) -> std::string {
    if (matches(p, "[A-Za-z0-9_.+@-]+")) {
      return "";
    }
    return "a profile name uses letters, digits and _ . + @ -";
  });
  if (const Item* it = m.get("endpoints")) {
    Map em(c, it->value, it->path, it->mark, {"s3", "healthlake", "sts"});
    if (em.ok()) {
      c.opt_string(em, "s3", aws.endpoints.s3, check_url);
      c.opt_string(em, "healthlake", aws.endpoints.healthlake, check_url);
      c.opt_string(em, "sts", aws.endpoints.sts, check_url);
    }
  }
  c.boolean(m, "s3_path_style", aws.s3_path_style);
  // proxy / no_proxy: null (or absent) = the environment decides; "" = explicitly none (direct
  // connections / no bypass list), whatever the environment says.
  if (const Item* it = m.get("proxy"); it && !c.is_null(*it)) {
    if (auto v = c.text(*it)) {
      std::string why = v->empty() ? "" : check_url(*v);
      if (why.empty()) {
        aws.proxy = *v;
      } else {
        c.error(it->mark, it->path,
                "expected a proxy URL such as http://proxy.hospital:3128, or \"\" for "
                "direct connections, got '" +
                    *v + "'");
      }
    }
  }
  if (const Item* it = m.get("no_proxy"); it && !c.is_null(*it)) {
    if (auto v = c.text(*it)) {
      if (matches(*v, "[A-Za-z0-9.*:/\\[\\]_, -]*")) {
        aws.no_proxy = *v;
      } else {
        c.error(it->mark, it->path,
                "expected comma-separated host names, domains (.example.org), IP addresses or "
                "CIDR ranges, or *, got '" +
                    *v + "'");
      }
    }
  }
  c.enumeration<aws::PayloadSigning>(m, "payload_signing", aws.payload_signing,
                                     {{"auto", aws::PayloadSigning::automatic},
                                      {"signed", aws::PayloadSigning::signed_payload},
                                      {"unsigned-trailer", aws::PayloadSigning::unsigned_trailer}});
  if (const Item* it = m.get("ca_bundle"); it && !c.is_null(*it)) {
    fs::path p;
    if (c.abs_path(*it, p)) {
      aws.ca_bundle = p;
    }
  }
}

}  // namespace fe::config::detail
