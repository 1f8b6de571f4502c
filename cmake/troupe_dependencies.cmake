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
