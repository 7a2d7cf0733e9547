# Fails unless README (-DREADME=...) contains the file SNIPPET (-DSNIPPET=...) verbatim inside a cpp block.
file(READ "${README}" readme)
file(READ "${SNIPPET}" snippet)
string(FIND "${readme}" "```cpp\n${snippet}```" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "README.md does not contain ${SNIPPET} verbatim in a ```cpp block; copy the file into README")
endif()
message(STATUS "README usage snippet matches ${SNIPPET}")
