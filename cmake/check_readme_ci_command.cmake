# Fails unless README (-DREADME=...) shows, as a ```sh block of its own, the command that CI (-DCI_RUN=..., the
# script .ci/run) runs: the script's last line, verbatim.
file(STRINGS "${CI_RUN}" lines)
list(POP_BACK lines command)
string(STRIP "${command}" command)
file(READ "${README}" readme)
string(FIND "${readme}" "```sh\n${command}\n```\n" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "README.md does not show the test command of ${CI_RUN} verbatim in a ```sh block:\n"
                      "${command}\nKeep README's test command and .ci/run identical.")
endif()
message(STATUS "README's test command is the one .ci/run runs")
