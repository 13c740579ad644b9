// A proxied method cannot take a pointer: the owner is another process.
#include <parc/parc.hpp>

struct Node {
  int value = 0;
};
struct Graph {
  void link(Node* node) { (void)node; }
};
PARC_PROXY_TYPE(Graph, &Graph::link);

int main() {}
