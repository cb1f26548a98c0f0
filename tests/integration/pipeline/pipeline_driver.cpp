// pipeline-driver: the daemon shell (service::Service) with the daemon's stages (app::Stages)
// and the import stage turned off, for the kill/restart integration tests. Same behaviour as
// `fhir-edge run` up to `uploaded`.
//   pipeline-driver CONFIG [--min-part-size BYTES] [--auto-part-size BYTES] [--retry-ms MS]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "app/stages.hpp"
#include "config/config.hpp"
#include "service/log.hpp"
#include "service/service.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(
        "usage: pipeline-driver CONFIG [--min-part-size N] [--auto-part-size N] [--retry-ms N]\n",
        stderr);
    return 2;
  }
  fe::app::StageOptions popt;
  popt.import_jobs = false;  // the upload stage alone (kill/resume tests end at `uploaded`)
  fe::service::Service* svc = nullptr;
  popt.on_change = [&svc] {
    if (svc) svc->refresh_status();
  };
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string_view a = argv[i];
    auto v = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--min-part-size") {
      popt.min_part_size = v;
    } else if (a == "--auto-part-size") {
      popt.auto_part_size = v;
    } else if (a == "--scan-quiet-ms") {
      popt.scan_quiet = std::chrono::milliseconds(v);
    } else if (a == "--retry-ms") {
      popt.retry_base = std::chrono::milliseconds(v);
    } else {
      std::fprintf(stderr, "pipeline-driver: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  fe::service::Options sopt;
  sopt.config_path = argv[1];
  auto loaded = fe::config::load_config(sopt.config_path);
  if (!loaded.ok()) {
    std::fputs(fe::config::format(loaded.errors).c_str(), stderr);
    return 2;
  }
  fe::service::Service service(sopt, *loaded.config);
  svc = &service;
  service.add(std::make_shared<fe::app::Stages>(service.io(), service.config(), popt));
  return service.run();
}
