// A distributed word count with proxies: one Shard (word -> count) per worker, built
// there with parc::make_proxy. Farm tasks count the words of one text each and add each
// shard's part through its proxy, straight to the shard's owner: the counts never pass
// through rank 0. Rank 0 then reads the shards back and checks them against a serial
// count. The C++ twin of python/dictionary.py.
//
//   proxy_counter                          serial: one simulated worker, one shard
//   PARC_SERIAL=4 proxy_counter            four simulated workers, four shards
//   mpiexec.mpich -n 4 proxy_counter       rank 0 manages, ranks 1-3 own a shard each

#include <parc/parc.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace {

const std::vector<std::string> vocabulary = {
    "the",     "quick",   "brown", "fox", "jumps",  "over", "a",    "lazy", "dog", "while", "seven",
    "wizards", "quietly", "box",   "the", "jovial", "frog", "near", "my",   "old", "oak",   "tree"};
constexpr int texts = 40;  // of 5000 words each

std::vector<std::string> text(int seed) {
  std::mt19937 random(static_cast<std::uint32_t>(seed));
  std::uniform_int_distribution<std::size_t> pick(0, vocabulary.size() - 1);
  std::vector<std::string> words(5000);
  for (auto& word : words) word = vocabulary[pick(random)];
  return words;
}

// A word's shard: FNV-1a, the same on every rank.
std::size_t shard_of(const std::string& word, std::size_t shards) {
  std::uint64_t hash = 14695981039346656037ull;
  for (char c : word) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return static_cast<std::size_t>(hash % shards);
}

}  // namespace

// One part of the dictionary, at its owner. Tasks on several ranks add to it at once
// (served one at a time by the owner's progress thread, but a task on the owner itself
// calls it directly): the lock keeps the map consistent.
class Shard {
 public:
  void add(const std::map<std::string, long>& counts) {
    std::lock_guard lock(mutex_);
    for (const auto& [word, count] : counts) counts_[word] += count;
  }
  long count(const std::string& word) const {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(word);
    return it == counts_.end() ? 0 : it->second;
  }
  std::map<std::string, long> contents() const {
    std::lock_guard lock(mutex_);
    return counts_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, long> counts_;
};
PARC_PROXY_TYPE(Shard, &Shard::add, &Shard::count, &Shard::contents);

// Counts text(seed) and adds each shard's part to it; returns how many words it counted.
long count_text(int seed, std::vector<parc::Proxy<Shard>> shards) {
  std::vector<std::map<std::string, long>> parts(shards.size());
  const auto words = text(seed);
  for (const auto& word : words) parts[shard_of(word, shards.size())][word] += 1;
  std::vector<parc::Future<void>> added;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    if (!parts[i].empty()) added.push_back(shards[i].invoke(&Shard::add, parts[i]));
  }
  parc::wait_all(added);  // the owners add in parallel
  return static_cast<long>(words.size());
}
PARC_CLOSURE(count_text);

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    std::vector<parc::Proxy<Shard>> shards;
    for (int owner = 1; owner <= rt.workers(); ++owner) {
      shards.push_back(parc::make_proxy<Shard>(rt, owner));
    }
    long counted = 0;
    {
      std::vector<std::tuple<int, std::vector<parc::Proxy<Shard>>>> inputs;
      for (int seed = 0; seed < texts; ++seed) inputs.emplace_back(seed, shards);
      parc::TaskFarm farm(rt);
      for (long n : farm.map(count_text, inputs)) counted += n;
    }

    std::map<std::string, long> totals;
    std::vector<std::size_t> sizes;
    bool placed = true;
    for (std::size_t i = 0; i < shards.size(); ++i) {
      const auto contents = shards[i].invoke(&Shard::contents).get();  // a copy of its map
      sizes.push_back(contents.size());
      for (const auto& [word, count] : contents) {
        totals[word] += count;
        placed = placed && shard_of(word, shards.size()) == i;
      }
    }
    std::map<std::string, long> expected;
    for (int seed = 0; seed < texts; ++seed) {
      for (const auto& word : text(seed)) expected[word] += 1;
    }
    const long fox = shards[shard_of("fox", shards.size())].invoke(&Shard::count, "fox").get();
    std::printf("%d texts, %ld words, %zu distinct, in %zu shard(s) on ranks", texts, counted,
                totals.size(), shards.size());
    for (const auto& shard : shards) std::printf(" %d", shard.owner());
    std::printf(" holding");
    for (std::size_t size : sizes) std::printf(" %zu", size);
    std::printf(" words\n");
    const bool same = totals == expected && fox == expected["fox"];
    std::printf("fox %ld; same counts as one serial pass: %s; every word in its own shard: %s\n",
                fox, same ? "yes" : "no", placed ? "yes" : "no");

    shards.clear();  // the last proxies: the shards go at their owners
    std::uint64_t live = 0;
    for (int owner = 1; owner <= rt.workers(); ++owner) live += rt.proxies().live_objects(owner);
    std::printf("shards released: %llu objects left on the workers\n",
                static_cast<unsigned long long>(live));
    return same && placed && live == 0 ? 0 : 1;
  });
}
