# Fails unless README (-DREADME=...) shows every snippet of SNIPPET_DIR (-DSNIPPET_DIR=..., files NAME.cpp
# listed in -DNAMES=a;b;c) verbatim in a ```cpp block right after a line <!-- snippet: NAME -->, and has no
# such marker for a snippet that does not exist.
cmake_policy(VERSION 3.22)  # IN_LIST
file(READ "${README}" readme)
set(ok TRUE)
foreach(name IN LISTS NAMES)
  file(READ "${SNIPPET_DIR}/${name}.cpp" snippet)
  string(FIND "${readme}" "<!-- snippet: ${name} -->\n```cpp\n${snippet}```\n" pos)
  if(pos EQUAL -1)
    set(ok FALSE)
    message(SEND_ERROR "README.md lacks <!-- snippet: ${name} --> followed by ${SNIPPET_DIR}/${name}.cpp verbatim "
                       "in a ```cpp block; copy the file into README")
  endif()
endforeach()
# Markers on lines of their own (prose may mention the marker syntax).
string(REGEX MATCHALL "\n<!-- snippet: [^ ]+ -->\n" markers "${readme}")
foreach(marker IN LISTS markers)
  string(REGEX REPLACE "\n<!-- snippet: ([^ ]+) -->\n" "\\1" name "${marker}")
  string(STRIP "${marker}" marker)
  if(NOT name IN_LIST NAMES)
    set(ok FALSE)
    message(SEND_ERROR "README.md has ${marker}, but there is no snippet ${name} (known: ${NAMES})")
  endif()
endforeach()
if(ok)
  list(LENGTH markers count)
  message(STATUS "README shows ${count} snippets, each identical to its file in ${SNIPPET_DIR}")
endif()
