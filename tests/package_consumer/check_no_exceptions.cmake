# Compiles a one-line consumer of robustxlt with -fno-exceptions and expects the compiler to stop with the
# library's own #error saying why, in a short output (not a cascade from every throw in the headers).
# cmake -DCXX=<compiler> -DINCLUDES=<dir;dir> -DWORK_DIR=<dir> -P check_no_exceptions.cmake
set(max_lines 20)
set(message "robustxlt reports bad input with exceptions")
file(MAKE_DIRECTORY ${WORK_DIR})
file(WRITE ${WORK_DIR}/no_exceptions.cpp "#include <robustxlt/robustxlt.hpp>\nint main() { return 0; }\n")
set(include_flags "")
foreach(dir IN LISTS INCLUDES)
  list(APPEND include_flags -I${dir})
endforeach()
execute_process(
  COMMAND ${CXX} -std=c++17 -fno-exceptions ${include_flags} -fsyntax-only ${WORK_DIR}/no_exceptions.cpp
  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
string(REGEX MATCHALL "\n" newlines "${output}")
list(LENGTH newlines lines)
if(result EQUAL 0)
  message(FATAL_ERROR "a consumer compiled with -fno-exceptions must not compile, but it did")
endif()
string(FIND "${output}" "${message}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the compiler output lacks the #error \"${message} ...\":\n${output}")
endif()
if(lines GREATER_EQUAL max_lines)
  message(FATAL_ERROR "the compiler printed ${lines} lines for -fno-exceptions, expected fewer than ${max_lines}:\n${output}")
endif()
message(STATUS "-fno-exceptions stops compilation with robustxlt's #error in ${lines} lines of output:\n${output}")
