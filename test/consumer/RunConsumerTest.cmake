# Installs the module's build tree into a fresh prefix, builds the consumer
# project against that install (find_package(KDBrainExtraction)) and runs it.
#   cmake -DMODULE_BUILD_DIR=... -DCONSUMER_SOURCE_DIR=... -DWORK_DIR=... -DHEAD=... -DMASK=... -P RunConsumerTest.cmake
foreach(variable MODULE_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR HEAD MASK)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "${variable} is not set")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${ARGN}\nfailed (${result}):\n${output}")
  endif()
  message(STATUS "${output}")
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
run(${CMAKE_COMMAND} --install ${MODULE_BUILD_DIR} --prefix ${WORK_DIR}/install)
# The installed module must stand alone: no model folder from the environment.
unset(ENV{KDBET_MODEL_DIR})
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_PREFIX_PATH=${WORK_DIR}/install)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/KDBrainExtractionConsumer ${HEAD} ${MASK})
