# Plain-CMake build of the module against an installed ITK that lacks
# ITKModuleExternal.cmake (ITK never installs it; Debian's ITK 5.2.1 is such a
# tree). It provides look-alikes of the few ITK module macros that our
# CMakeLists files use, so that src/ and test/ read the same in both modes.

include(GenerateExportHeader)
include(CMakePackageConfigHelpers)
include(CTest)
include(ExternalData)

# Shared, as ITK builds modules declared ENABLE_SHARED: the library finds the
# shipped models relative to its own file, and consumers need no LibTorch.
option(BUILD_SHARED_LIBS "Build the module library as a shared library" ON)
# Installed executables and libraries find the module's library in ../lib, and
# keep the paths of libraries outside the install tree (a CUDA LibTorch).
set(CMAKE_INSTALL_RPATH "$ORIGIN/../lib")
set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)
set(KDBrainExtraction_INSTALL_CMAKE_DIR lib/cmake/KDBrainExtraction)
# Install and export rules are this build's (test/consumer tests them).
set(KDBrainExtraction_INSTALL_EXPORT ON)

# itk_module(): record the dependencies that itk-module.cmake declares.
function(itk_module _name)
  cmake_parse_arguments(PARSE_ARGV 1 _kdbe "EXCLUDE_FROM_DEFAULT;ENABLE_SHARED" ""
    "DEPENDS;TEST_DEPENDS;COMPILE_DEPENDS;DESCRIPTION")
  set(${_name}_DEPENDS ${_kdbe_DEPENDS} PARENT_SCOPE)
  set(${_name}_TEST_DEPENDS ${_kdbe_TEST_DEPENDS} PARENT_SCOPE)
endfunction()
include(${CMAKE_CURRENT_SOURCE_DIR}/itk-module.cmake)

set(itk-module KDBrainExtraction)
find_package(ITK 5.2 REQUIRED COMPONENTS
  ${KDBrainExtraction_DEPENDS} ${KDBrainExtraction_TEST_DEPENDS})
include(${ITK_USE_FILE})

set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
set(CMAKE_LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
set(CMAKE_ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
set(ITK_TEST_OUTPUT_DIR ${CMAKE_BINARY_DIR}/Testing/Temporary)
file(MAKE_DIRECTORY ${ITK_TEST_OUTPUT_DIR})

set(KDBrainExtraction_INCLUDE_DIRS
  ${CMAKE_CURRENT_SOURCE_DIR}/include ${CMAKE_CURRENT_BINARY_DIR}/include)
set(KDBrainExtraction-Test_LIBRARIES KDBrainExtraction ${ITK_LIBRARIES})

# itk_module_add_library(): the shared module library with its export header.
function(itk_module_add_library _name)
  add_library(${_name} ${ARGN})
  generate_export_header(${_name}
    EXPORT_MACRO_NAME ${_name}_EXPORT
    EXPORT_FILE_NAME ${CMAKE_CURRENT_BINARY_DIR}/../include/${_name}Export.h)
  # Hidden by default, as ITK builds its shared modules: only what is marked
  # ${_name}_EXPORT is visible to the training library, tests and programs.
  set_target_properties(${_name} PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  target_include_directories(${_name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${CMAKE_BINARY_DIR}/include>
    $<INSTALL_INTERFACE:include/KDBrainExtraction>)
  # Only the modules the library itself depends on (not the tests' IO and
  # test kernel): they become the exported target's interface.
  set(_itk_libraries "")
  foreach(_dependency ${KDBrainExtraction_DEPENDS})
    list(APPEND _itk_libraries ${${_dependency}_LIBRARIES})
  endforeach()
  target_link_libraries(${_name} PUBLIC ${_itk_libraries})
  install(TARGETS ${_name} EXPORT ${_name}Targets
    LIBRARY DESTINATION lib ARCHIVE DESTINATION lib RUNTIME DESTINATION bin)
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/ DESTINATION include/KDBrainExtraction
    FILES_MATCHING PATTERN "*.h" PATTERN "*.hxx")
  install(FILES ${CMAKE_BINARY_DIR}/include/${_name}Export.h DESTINATION include/KDBrainExtraction)
endfunction()

macro(itk_module_test)
endmacro()

# CreateTestDriver(): one executable running every *Test.cxx by name, with
# ITK's own before/after hooks (which implement --compare and friends).
function(CreateTestDriver _module _libs _tests)
  set(CMAKE_TESTDRIVER_BEFORE_TESTMAIN "#include \"itkTestDriverBeforeTest.inc\"")
  set(CMAKE_TESTDRIVER_AFTER_TESTMAIN "#include \"itkTestDriverAfterTest.inc\"")
  set(_extra_include "itkTestDriverIncludeRequiredIOFactories.h")
  create_test_sourcelist(_driver_sources ${_module}TestDriver.cxx ${_tests}
    EXTRA_INCLUDE ${_extra_include}
    FUNCTION ProcessArgumentsAndRegisterRequiredFactories)
  add_executable(${_module}TestDriver ${_driver_sources})
  target_link_libraries(${_module}TestDriver ${_libs})
  target_include_directories(${_module}TestDriver PRIVATE ${ITKTestKernel_INCLUDE_DIRS})
endfunction()

# itk_add_test(): a CTest test whose DATA{} arguments come from ExternalData.
function(itk_add_test)
  ExternalData_add_test(KDBrainExtractionData ${ARGN})
endfunction()

# CreateGoogleTestDriver(): one GoogleTest executable, each TEST a CTest test.
function(CreateGoogleTestDriver _name _libs _sources)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(${_name}GTestDriver ${_sources})
  target_link_libraries(${_name}GTestDriver ${_libs} GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${_name}GTestDriver DISCOVERY_TIMEOUT 120
    PROPERTIES ENVIRONMENT "KDBrainExtraction_DATA_DIR=${CMAKE_SOURCE_DIR}/Data")
endfunction()

# Test data: the workplace's shared store first, then the project's own small
# store of baselines that this project generated (Data/ObjectStore).
if(NOT ExternalData_OBJECT_STORES)
  set(_shared_store "${CMAKE_SOURCE_DIR}/../shared/ExternalData")
  get_filename_component(_shared_store "${_shared_store}" ABSOLUTE)
  set(ExternalData_OBJECT_STORES "${_shared_store}" "${CMAKE_SOURCE_DIR}/Data/ObjectStore"
    CACHE STRING "Local ExternalData object stores")
endif()
set(ExternalData_SOURCE_ROOT ${CMAKE_SOURCE_DIR})
set(ExternalData_BINARY_ROOT ${CMAKE_BINARY_DIR}/ExternalData)
set(ExternalData_LINK_CONTENT SHA512)
set(ExternalData_NO_SYMLINKS ON)

add_subdirectory(src)

# find_package(KDBrainExtraction) for downstream projects (test/consumer).
install(EXPORT KDBrainExtractionTargets NAMESPACE KDBrainExtraction:: DESTINATION ${KDBrainExtraction_INSTALL_CMAKE_DIR})
set(KDBrainExtraction_MODEL_INSTALL_DIR share/KDBrainExtraction/Models)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/KDBrainExtractionConfig.cmake.in
  ${CMAKE_BINARY_DIR}/KDBrainExtractionConfig.cmake INSTALL_DESTINATION ${KDBrainExtraction_INSTALL_CMAKE_DIR}
  PATH_VARS KDBrainExtraction_MODEL_INSTALL_DIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/KDBrainExtractionConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/KDBrainExtractionConfig.cmake ${CMAKE_BINARY_DIR}/KDBrainExtractionConfigVersion.cmake
  DESTINATION ${KDBrainExtraction_INSTALL_CMAKE_DIR})
install(FILES ${CMAKE_SOURCE_DIR}/LICENSE DESTINATION share/doc/KDBrainExtraction)
if(KDBrainExtraction_BUILD_PYTHON)
  add_subdirectory(python)
endif()
if(BUILD_TESTING)
  add_subdirectory(test)
  ExternalData_add_target(KDBrainExtractionData)
endif()
