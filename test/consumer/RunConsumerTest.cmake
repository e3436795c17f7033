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

# Brain extraction needs no training code: the module library defines none of
# the trainer's, evaluation protocol's or label-map synthesis's symbols (those
# are in libKDBrainExtractionTraining), and exports no LibTorch network classes
# beyond what the training library needs.
file(GLOB module_library ${WORK_DIR}/install/lib/libKDBrainExtraction.so)
if(module_library)
  find_program(NM_EXECUTABLE nm REQUIRED)
  execute_process(COMMAND ${NM_EXECUTABLE} -D -C --defined-only ${module_library}
    OUTPUT_VARIABLE module_symbols RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "nm failed on ${module_library}")
  endif()
  string(REGEX MATCHALL "itk::KDBrainExtraction(Trainer|EvaluationProtocol|WholeHeadLabels)[^\n]*" training_symbols "${module_symbols}")
  if(training_symbols)
    list(GET training_symbols 0 first_training_symbol)
    message(FATAL_ERROR "${module_library} defines training code, e.g. ${first_training_symbol}")
  endif()
  if(NOT module_symbols MATCHES "itk::KDBrainExtractionTorchModel::Predict")
    message(FATAL_ERROR "${module_library} does not export the model (nm found no KDBrainExtractionTorchModel::Predict)")
  endif()
endif()
# The installed module must stand alone: no model folder from the environment.
unset(ENV{KDBET_MODEL_DIR})
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_PREFIX_PATH=${WORK_DIR}/install)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/KDBrainExtractionConsumer ${HEAD} ${MASK})
