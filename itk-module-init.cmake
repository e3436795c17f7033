# LibTorch is an external dependency of the module: find it before ITK's
# module machinery runs, and hand its include directories and libraries to
# every consumer of the module (as ITKIMPACT does).
find_package(Torch REQUIRED)

set(KDBrainExtraction_TORCH_LIBRARIES "${TORCH_LIBRARIES}")
set(KDBrainExtraction_SYSTEM_INCLUDE_DIRS ${TORCH_INCLUDE_DIRS})
set(KDBrainExtraction_EXPORT_CODE_BUILD "
if(NOT Torch_FOUND)
  set(Torch_DIR \"${Torch_DIR}\")
  find_package(Torch REQUIRED)
endif()
")
set(KDBrainExtraction_EXPORT_CODE_INSTALL "${KDBrainExtraction_EXPORT_CODE_BUILD}")
