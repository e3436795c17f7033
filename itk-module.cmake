# The module description, read by ITK's module system (in an ITK source tree)
# and by CMake/KDBrainExtractionStandalone.cmake (installed ITK without
# ITKModuleExternal.cmake, such as Debian's libinsighttoolkit5-dev).
# ITK's itk_module() is a macro: a description holding semicolons (as the
# README does) would be split into unknown arguments, so it is a paragraph here.
set(DOCUMENTATION "Brain extraction (skull stripping) of 3D head MRI (T1w, T2w, PDw) with a
knowledge-distilled pair of 3D UNet++ networks run through LibTorch, on the CPU or CUDA.
KDStudentMaskFilter gives the brain mask, KDTeacherImageFilter the brain-only image, and
HybridLossMetric the scores of a mask against a reference. The module ships its trained default
models, its trainer and the kdbet command-line tool.")

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
