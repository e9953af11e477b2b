# Installs the aem build into a scratch prefix, then configures, builds and runs a tiny
# project that only knows `find_package(aem)`, `aem::aem` and `aem::mimalloc`.
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${AEM_BINARY_DIR}" --prefix "${WORK_DIR}/prefix"
  RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "installing aem failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build"
    -G "${CMAKE_GENERATOR}" -DCMAKE_BUILD_TYPE=${AEM_BUILD_TYPE} "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix"
  RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed (${rc})")
endif()
# aem_consumer links aem::aem only and must keep the C library's malloc (mimalloc not even
# loaded); aem_consumer_mimalloc opts into aem::mimalloc and must run on it.
foreach(program aem_consumer aem_consumer_mimalloc)
  execute_process(COMMAND "${WORK_DIR}/build/${program}" RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  message(STATUS "${program} said: ${out}")
  if(rc OR NOT out MATCHES "consumer ok: 42")
    message(FATAL_ERROR "${program} did not run correctly (${rc}): ${out}")
  endif()
endforeach()
