// healthlake-local: a strict local S3 + HealthLake import endpoint for tests, benchmarks and the
// demo. See README.md in this folder for what it implements and what it does not.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "options.hpp"
#include "server.hpp"
#include "service/log.hpp"

int main(int argc, char** argv) {
  fe::hll::ServerOptions opt;
  std::string error;
  switch (fe::hll::parse_options(argc, argv, opt, error)) {
    case fe::hll::ParseResult::help:
      std::cout << fe::hll::usage();
      return 0;
    case fe::hll::ParseResult::error:
      std::cerr << "healthlake-local: " << error << "\n" << fe::hll::usage();
      return 2;
    case fe::hll::ParseResult::ok:
      break;
  }
  try {
    boost::asio::io_context io;
    fe::hll::Server server(io, opt);
    server.start();
    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      fe::log::info("healthlake-local: stopping");
      server.stop();
      io.stop();
    });
    std::printf("%u\n", static_cast<unsigned>(server.port()));
    std::fflush(stdout);
    fe::log::info("healthlake-local: listening",
                  {{"PORT", std::to_string(server.port())}, {"DATA", opt.data.string()}});
    io.run();
    return 0;
  } catch (const std::invalid_argument& e) {
    std::cerr << "healthlake-local: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "healthlake-local: " << e.what() << "\n";
    return 1;
  }
}
