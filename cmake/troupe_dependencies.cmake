# Finds the Debian 12 packages troupe builds on (see tools/install-deps.sh).
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(Protobuf REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(doctest REQUIRED)

find_path(DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.hpp REQUIRED)
find_library(DNNL_LIBRARY dnnl REQUIRED)
add_library(troupe::dnnl INTERFACE IMPORTED)
target_include_directories(troupe::dnnl SYSTEM INTERFACE ${DNNL_INCLUDE_DIR})
target_link_libraries(troupe::dnnl INTERFACE ${DNNL_LIBRARY})

# Debian's libonnx ships a CMake package (namespace "onnx", built with ONNX_ML).
find_package(ONNX REQUIRED)
add_library(troupe::onnx INTERFACE IMPORTED)
target_link_libraries(troupe::onnx INTERFACE onnx_proto protobuf::libprotobuf)

# CAF 0.17.6 (Debian's libcaf-dev ships no CMake package): headers and libraries by hand.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
file(STRINGS ${CAF_INCLUDE_DIR}/caf/config.hpp TROUPE_CAF_VERSION_LINE
     REGEX "^#define CAF_VERSION [0-9]+")
string(REGEX MATCH "[0-9]+" TROUPE_CAF_VERSION "${TROUPE_CAF_VERSION_LINE}")
if(NOT TROUPE_CAF_VERSION EQUAL 1706)
  message(FATAL_ERROR "troupe needs CAF 0.17.6 (CAF_VERSION 1706), found ${TROUPE_CAF_VERSION}")
endif()
add_library(troupe::caf INTERFACE IMPORTED)
target_include_directories(troupe::caf SYSTEM INTERFACE ${CAF_INCLUDE_DIR})
target_link_libraries(troupe::caf INTERFACE ${CAF_IO_LIBRARY} ${CAF_CORE_LIBRARY} Threads::Threads)
# Every type put into a message must have a type ID: an unregistered one fails the build.
target_compile_definitions(troupe::caf INTERFACE CAF_ENABLE_TYPE_ID_CHECKS)

# KServe JSON codec: simdjson (Debian's libsimdjson-dev ships a CMake package).
find_package(simdjson REQUIRED)

# HTTP server: Boost.Beast and Asio are header-only; they need only the headers and threads.
find_package(Boost 1.74 REQUIRED)
add_library(troupe::beast INTERFACE IMPORTED)
target_link_libraries(troupe::beast INTERFACE Boost::headers Threads::Threads)
# std::string_view in Beast's interfaces instead of boost::string_view; no deprecated Asio names.
target_compile_definitions(troupe::beast INTERFACE BOOST_BEAST_USE_STD_STRING_VIEW
                                                   BOOST_ASIO_NO_DEPRECATED)

# zlib reads the gzip-compressed datasets of load scenarios (Fashion-MNIST IDX files).
find_package(ZLIB REQUIRED)
