// README's snippets, built into one program (one compile of the headers instead of five): each snippet file
// is a complete program whose main() is renamed here, and `run_snippets NAME` runs one of them.
#include <robustxlt/robustxlt.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#define main snippet_nn
#include "nn.cpp"
#undef main
#define main snippet_perturb
#include "perturb.cpp"
#undef main
#define main snippet_noise
#include "noise.cpp"
#undef main
#define main snippet_smooth
#include "smooth.cpp"
#undef main
#define main snippet_align
#include "align.cpp"
#undef main

int main(int argc, char** argv) {
  struct Snippet {
    const char* name;
    int (*run)();
  };
  const Snippet snippets[] = {{"nn", snippet_nn},
                              {"perturb", snippet_perturb},
                              {"noise", snippet_noise},
                              {"smooth", snippet_smooth},
                              {"align", snippet_align}};
  int failed = 0;
  for (const Snippet& s : snippets) {
    if (argc > 1 && std::strcmp(argv[1], s.name) != 0) continue;
    const int rc = s.run();
    std::printf("snippet %s: %s\n", s.name, rc == 0 ? "passed" : "FAILED");
    failed += rc != 0;
  }
  return failed;
}
