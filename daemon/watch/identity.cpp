#include "watch/identity.hpp"

namespace fe::watch {

std::vector<Change> changed_after_taken(const std::vector<TakenFile>& files) {
  std::vector<Change> out;
  for (const auto& f : files) {
    auto now = identity_of(f.path);
    if (!now)
      out.push_back({f.name, "deleted"});
    else if (auto what = identity_change(f.identity, *now); !what.empty())
      out.push_back({f.name, std::string(what)});
  }
  return out;
}

}  // namespace fe::watch
