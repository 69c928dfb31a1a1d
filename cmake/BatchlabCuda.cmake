# The CUDA device backend, libbatchlab-cuda.so (docs/cuda.md).
#
# BATCHLAB_CUDA=AUTO builds it when a CUDA compiler and toolkit are found (nvcc on the PATH, in
# CUDACXX, or /usr/local/cuda/bin/nvcc), ON requires them, OFF never builds it. AUTO leaves it
# out of sanitizer and fuzzing builds: nvcc's host code is not instrumented, and the CUDA
# driver's address-space reservations clash with ASan's shadow memory (docs/cuda.md).
#
# batchlab_cuda_detect() sets BATCHLAB_CUDA_BUILT (0/1, also in build_config.h);
# batchlab_cuda_backend() adds the target once libbatchlab exists.
set(BATCHLAB_CUDA AUTO CACHE STRING
  "Build the CUDA device backend libbatchlab-cuda.so: AUTO (when the toolkit is found), ON (required), OFF")
set_property(CACHE BATCHLAB_CUDA PROPERTY STRINGS AUTO ON OFF)
# sm_80 (A100) and sm_90 (H100/H200) as machine code, plus sm_90 PTX that newer GPUs JIT.
set(BATCHLAB_CUDA_ARCHITECTURES "80-real;90-real;90-virtual" CACHE STRING
  "CUDA architectures of libbatchlab-cuda.so (CMake CUDA_ARCHITECTURES syntax)")

macro(batchlab_cuda_detect)
  set(BATCHLAB_CUDA_BUILT 0)
  string(TOUPPER "${BATCHLAB_CUDA}" _bl_cuda_mode)
  if(NOT _bl_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
    message(FATAL_ERROR "BATCHLAB_CUDA must be AUTO, ON or OFF, not '${BATCHLAB_CUDA}'")
  endif()
  set(_bl_cuda_try OFF)
  if(_bl_cuda_mode STREQUAL "ON")
    set(_bl_cuda_try ON)
  elseif(_bl_cuda_mode STREQUAL "AUTO")
    if(BATCHLAB_SANITIZE OR BATCHLAB_FUZZ)
      message(STATUS "CUDA backend: not built (BATCHLAB_CUDA=AUTO leaves it out of sanitizer and fuzzing builds)")
    else()
      set(_bl_cuda_try ON)
    endif()
  endif()
  if(_bl_cuda_try)
    if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
      find_program(_bl_nvcc_on_path nvcc)
      if(NOT _bl_nvcc_on_path)
        set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
      endif()
    endif()
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      enable_language(CUDA)
      find_package(CUDAToolkit)
    endif()
    if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND AND TARGET CUDA::cublas)
      set(BATCHLAB_CUDA_BUILT 1)
      message(STATUS "CUDA backend: building libbatchlab-cuda.so (CUDA ${CUDAToolkit_VERSION}, architectures ${BATCHLAB_CUDA_ARCHITECTURES})")
    elseif(_bl_cuda_mode STREQUAL "ON")
      message(FATAL_ERROR "BATCHLAB_CUDA=ON but no CUDA compiler with cuBLAS was found (set CUDACXX or put nvcc on the PATH)")
    else()
      message(STATUS "CUDA backend: not built (no CUDA toolkit found; BATCHLAB_CUDA=AUTO)")
    endif()
  elseif(_bl_cuda_mode STREQUAL "OFF")
    message(STATUS "CUDA backend: not built (BATCHLAB_CUDA=OFF)")
  endif()
endmacro()

function(batchlab_cuda_backend)
  if(NOT BATCHLAB_CUDA_BUILT)
    return()
  endif()
  file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/core/src/device/cuda/*.cu)
  add_library(batchlab_cuda MODULE ${sources})
  target_include_directories(batchlab_cuda PRIVATE ${PROJECT_SOURCE_DIR}/core/include
    ${PROJECT_SOURCE_DIR}/core/src)
  target_link_libraries(batchlab_cuda PRIVATE batchlab CUDA::cudart_static CUDA::cublas
    Threads::Threads)
  # --fmad=false: no a·b + c contracted into an FMA, so elementwise kernels give the CPU's bits
  # (core/src/device/kernel_math.h); division and sqrt stay IEEE-rounded (nvcc's default).
  # C++20 for designated initializers (the ops table names each field); set as a flag because
  # CMake 3.25 does not know that nvcc 13 has CUDA20.
  target_compile_options(batchlab_cuda PRIVATE -std=c++20 --fmad=false
    -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter
    $<$<BOOL:${BATCHLAB_WERROR}>:--Werror=all-warnings -Xcompiler=-Werror>)
  set_target_properties(batchlab_cuda PROPERTIES
    OUTPUT_NAME batchlab-cuda PREFIX lib
    CUDA_ARCHITECTURES "${BATCHLAB_CUDA_ARCHITECTURES}"
    CUDA_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY ${BATCHLAB_BUILD_PLUGIN_DIR}
    INSTALL_RPATH "$ORIGIN/../..;${CUDAToolkit_LIBRARY_DIR}")
  install(TARGETS batchlab_cuda LIBRARY DESTINATION ${BATCHLAB_PLUGIN_INSTALL_DIR})
endfunction()
