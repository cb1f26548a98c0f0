# Every dependency comes from a Debian 12 package (scripts/bootstrap installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(Boost 1.74 REQUIRED)                # header-only: Asio, Beast
find_package(CURL REQUIRED)                      # CURL::libcurl
find_package(yaml-cpp 0.7 REQUIRED)              # target: yaml-cpp
find_package(simdjson REQUIRED)                  # simdjson::simdjson
find_package(SQLite3 REQUIRED)                   # SQLite::SQLite3
find_package(OpenSSL REQUIRED)                   # OpenSSL::Crypto
find_package(CLI11 2.1 CONFIG REQUIRED)          # CLI11::CLI11, header-only: the CLI parser
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
pkg_check_modules(ISAL REQUIRED IMPORTED_TARGET libisal)

# Boost 1.74 Asio under GCC 12 in C++20 mode uses std::exchange without <utility>:
# force-include it everywhere so no translation unit depends on include order.
add_library(fe_boost INTERFACE)
target_link_libraries(fe_boost INTERFACE Boost::boost Threads::Threads)
target_compile_options(fe_boost INTERFACE -include utility)
target_compile_definitions(fe_boost INTERFACE BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)

if(FHIR_EDGE_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
