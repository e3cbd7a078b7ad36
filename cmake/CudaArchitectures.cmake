# Default CUDA architectures for the kernels. CMakeLists.txt calls
# igc_default_cuda_architectures() before enable_language(CUDA), which would
# otherwise set CMAKE_CUDA_ARCHITECTURES to the compiler's own default.

# Native code for each of these that the toolkit can compile: mxnet-cu112 runs
# sm_50 to sm_86; sm_89 is Ada, sm_90 Hopper (CUDA 11.8 and newer).
set(IGC_CUDA_ARCHITECTURE_CANDIDATES 50 60 70 75 80 86 89 90)

# The sm_XX numbers `nvcc` compiles for, from `nvcc --list-gpu-code`, or from its
# release where that option is missing.
function(igc_supported_cuda_architectures nvcc out)
  execute_process(COMMAND ${nvcc} --list-gpu-code OUTPUT_VARIABLE listing
                  RESULT_VARIABLE failed ERROR_QUIET)
  set(found "")
  if(NOT failed)
    string(REGEX MATCHALL "sm_[0-9]+" codes "${listing}")
    foreach(code ${codes})
      string(REPLACE "sm_" "" number ${code})
      list(APPEND found ${number})
    endforeach()
  endif()
  if(NOT found)
    execute_process(COMMAND ${nvcc} --version OUTPUT_VARIABLE version ERROR_QUIET)
    string(REGEX MATCH "release ([0-9]+)\\.([0-9]+)" _ "${version}")
    set(release "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
    if(release VERSION_LESS 11.1)
      set(found 50 52 53 60 61 62 70 72 75 80)
    elseif(release VERSION_LESS 11.8)
      set(found 50 52 53 60 61 62 70 72 75 80 86 87)
    elseif(release VERSION_LESS 13.0)
      set(found 50 52 53 60 61 62 70 72 75 80 86 87 89 90)
    else()
      set(found 75 80 86 87 88 89 90 100 103 110 120 121)
    endif()
  endif()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

# CMAKE_CUDA_ARCHITECTURES entries for the candidates in `supported`: XX-real
# (machine code) for each, and plain XX (machine code and PTX) for the highest.
function(igc_cuda_architecture_list supported out)
  set(chosen "")
  foreach(arch ${IGC_CUDA_ARCHITECTURE_CANDIDATES})
    if(arch IN_LIST supported)
      list(APPEND chosen ${arch})
    endif()
  endforeach()
  if(NOT chosen)
    message(FATAL_ERROR "igc_mx: the CUDA compiler supports none of sm_"
            "${IGC_CUDA_ARCHITECTURE_CANDIDATES}; pass -DCMAKE_CUDA_ARCHITECTURES=...")
  endif()
  list(POP_BACK chosen highest)
  set(entries "")
  foreach(arch ${chosen})
    list(APPEND entries ${arch}-real)
  endforeach()
  list(APPEND entries ${highest})
  set(${out} ${entries} PARENT_SCOPE)
endfunction()

# Sets CMAKE_CUDA_ARCHITECTURES unless the user did (-D or the CUDAARCHS
# environment variable). Fails with what to install when there is no nvcc.
macro(igc_default_cuda_architectures)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
    include(CheckLanguage)
    check_language(CUDA)
    if(NOT CMAKE_CUDA_COMPILER)
      message(FATAL_ERROR "igc_mx: IGC_USE_CUDA=ON needs a CUDA compiler, and no nvcc was "
              "found. Install the CUDA toolkit (11.2 or newer; e.g. the cuda-toolkit package "
              "of NVIDIA's repository) and put its bin/ on PATH, or set CUDACXX=/path/to/nvcc.")
    endif()
    igc_supported_cuda_architectures(${CMAKE_CUDA_COMPILER} _igc_supported)
    igc_cuda_architecture_list("${_igc_supported}" CMAKE_CUDA_ARCHITECTURES)
  endif()
endmacro()
