// A proxied method cannot take a non-const reference: it would change the owner's copy.
#include <parc/parc.hpp>

#include <vector>

struct Sorter {
  void sort(std::vector<int>& values) { (void)values; }
};
PARC_PROXY_TYPE(Sorter, &Sorter::sort);

int main() {}
