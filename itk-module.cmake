# The module description, read by ITK's module system (in an ITK source tree)
# and by CMake/KDBrainExtractionStandalone.cmake (installed ITK without
# ITKModuleExternal.cmake, such as Debian's libinsighttoolkit5-dev).
get_filename_component(MY_CURRENT_DIR "${CMAKE_CURRENT_LIST_FILE}" PATH)
file(READ "${MY_CURRENT_DIR}/README.md" DOCUMENTATION)

itk_module(KDBrainExtraction
  DEPENDS
    ITKCommon
    ITKImageFilterBase
    ITKImageIntensity
    ITKImageGrid
    ITKThresholding
    ITKConnectedComponents
    ITKLabelMap
    ITKImageStatistics
    ITKDistanceMap
    ITKSmoothing
    ITKIOImageBase
    ITKZLIB
  TEST_DEPENDS
    ITKTestKernel
    ITKIONIFTI
    ITKIOMeta
    ITKIONRRD
    ITKIOPNG
    ITKGoogleTest
  EXCLUDE_FROM_DEFAULT
  ENABLE_SHARED
  DESCRIPTION
    "${DOCUMENTATION}"
)
