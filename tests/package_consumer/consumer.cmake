# Shared by the consumer projects in tests/cmake_*: builds tests/package_consumer/consumer.cpp as
# `consumer` against the target robustxlt::robustxlt, in the C++ standard ROBUSTXLT_CONSUMER_CXX_STANDARD
# (17 by default) with every warning an error, as a strict user's project would.
set(ROBUSTXLT_CONSUMER_CXX_STANDARD 17 CACHE STRING "C++ standard of the consumer program")
add_executable(consumer ${CMAKE_CURRENT_LIST_DIR}/consumer.cpp)
target_link_libraries(consumer PRIVATE robustxlt::robustxlt)
set_target_properties(consumer PROPERTIES
  CXX_STANDARD ${ROBUSTXLT_CONSUMER_CXX_STANDARD} CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
target_compile_options(consumer PRIVATE -Wall -Wextra -Wpedantic -Werror)
