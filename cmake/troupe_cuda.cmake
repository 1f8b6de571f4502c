# troupe_cuda: the CUDA language, target architectures and the NVIDIA libraries of the backend.
# Architectures: SASS for sm_80 (A100) and sm_90 (H100/H200) plus compute_90 PTX, so newer GPUs
# JIT the kernels. cuDNN and NCCL may come with the toolkit or from the nvidia-*-cu13 wheels:
# CUDNN_ROOT / NCCL_ROOT point at such a folder (with include/ and lib/).
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80-real 90)
endif()
enable_language(CUDA)
# CMake 3.25 (Debian 12) has no C++20 flag for nvcc although nvcc >= 12 takes -std=c++20.
if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)

set(_troupe_cuda_hints ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib
    ${CUDAToolkit_LIBRARY_ROOT}/lib64)
find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDNN_ROOT}/include ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
find_library(CUDNN_LIBRARY cudnn HINTS ${CUDNN_ROOT}/lib ${_troupe_cuda_hints} REQUIRED)
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${NCCL_ROOT}/include ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
find_library(NCCL_LIBRARY nccl HINTS ${NCCL_ROOT}/lib ${_troupe_cuda_hints} REQUIRED)

add_library(troupe::cudnn UNKNOWN IMPORTED)
set_target_properties(troupe::cudnn PROPERTIES IMPORTED_LOCATION ${CUDNN_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR})
add_library(troupe::nccl UNKNOWN IMPORTED)
set_target_properties(troupe::nccl PROPERTIES IMPORTED_LOCATION ${NCCL_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
message(STATUS "troupe: CUDA backend ${CUDAToolkit_VERSION} for ${CMAKE_CUDA_ARCHITECTURES}; "
               "cuDNN ${CUDNN_LIBRARY}; NCCL ${NCCL_LIBRARY}")
