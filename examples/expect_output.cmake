# expect_output.cmake — a ctest check of an example program: runs PROGRAM and fails unless it
# exits 0 *and* its standard output matches the regular expression EXPECT. ctest alone checks
# one or the other (PASS_REGULAR_EXPRESSION ignores the exit status).
#   cmake -DPROGRAM=path -DEXPECT=regex -P expect_output.cmake
foreach(required PROGRAM EXPECT)
  if(NOT DEFINED ${required})
    message(FATAL_ERROR "expect_output.cmake: -D${required}=... is required")
  endif()
endforeach()

execute_process(COMMAND ${PROGRAM} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
# Echoed, so a failure in ctest --output-on-failure shows what the program said.
message("${out}${err}")
if(NOT status STREQUAL "0")
  message(FATAL_ERROR "${PROGRAM} exited with status ${status}")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "${PROGRAM}'s output does not match: ${EXPECT}")
endif()
