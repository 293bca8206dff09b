# SPDX-License-Identifier: Apache-2.0
# Compiles the public header alone with clang's nullability checks as errors.
foreach(language c c++)
    execute_process(
        COMMAND ${CLANG} -x ${language} -fsyntax-only -Werror
            -Wnullability-completeness -Wnullability -Wall -Wextra
            -include ${HEADER} /dev/null
        RESULT_VARIABLE result
        ERROR_VARIABLE errors)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "${HEADER} as ${language}:\n${errors}")
    endif()
endforeach()
message(STATUS "nullability complete in C and C++")
