// The batch former (contract in batch_former.hpp).
#include "import/batch_former.hpp"

#include <algorithm>

namespace fe::import {

std::string batch_group_key(std::string_view datastore_id, std::string_view validation_level,
                            std::string_view data_access_role_arn, std::string_view output_s3_uri,
                            std::string_view output_kms_key_id) {
  // '\n' cannot occur in any of the fields (config validation), so the key is unambiguous.
  std::string k;
  for (auto part :
       {datastore_id, validation_level, data_access_role_arn, output_s3_uri, output_kms_key_id}) {
    k.append(part);
    k.push_back('\n');
  }
  return k;
}

bool BatchFormer::add(BatchCandidate c) {
  if (contains(c.id)) return false;
  std::string lane = c.lane;
  lanes_[lane].push_back(std::move(c));
  return true;
}

bool BatchFormer::remove(std::int64_t id) {
  for (auto it = lanes_.begin(); it != lanes_.end(); ++it) {
    auto& q = it->second;
    auto c = std::find_if(q.begin(), q.end(), [id](const auto& x) { return x.id == id; });
    if (c == q.end()) continue;
    q.erase(c);
    if (q.empty()) lanes_.erase(it);
    return true;
  }
  return false;
}

bool BatchFormer::contains(std::int64_t id) const {
  for (const auto& [lane, q] : lanes_)
    for (const auto& c : q)
      if (c.id == id) return true;
  return false;
}

BatchFormer::Plan BatchFormer::plan(const std::deque<BatchCandidate>& q) const {
  Plan p;
  if (q.empty()) return p;
  const auto& first = q.front();
  p.picks.push_back(0);
  std::size_t max_exports = std::max<std::size_t>(1, caps_.max_exports);
  // A batch of one: batching off, the first is not batchable, or it alone fills a cap.
  if (max_exports == 1 || !first.batchable || first.files >= caps_.max_files ||
      (caps_.max_bytes > 0 && first.bytes >= caps_.max_bytes)) {
    p.full = true;
    return p;
  }
  std::int64_t files = first.files, bytes = first.bytes;
  for (std::size_t i = 1; i < q.size(); ++i) {
    const auto& c = q[i];
    if (c.group != first.group) continue;  // another job's; it keeps its place in the lane
    if (!c.batchable || files + c.files > caps_.max_files ||
        (caps_.max_bytes > 0 && bytes + c.bytes > caps_.max_bytes)) {
      p.full = true;  // the first that does not fit closes the batch (FIFO: never overtaken)
      return p;
    }
    files += c.files;
    bytes += c.bytes;
    p.picks.push_back(i);
    if (p.picks.size() >= max_exports) {
      p.full = true;
      return p;
    }
  }
  return p;
}

std::optional<std::vector<std::int64_t>> BatchFormer::take(std::string_view lane,
                                                           Clock::time_point now) {
  auto it = lanes_.find(lane);
  if (it == lanes_.end() || it->second.empty()) return std::nullopt;
  auto& q = it->second;
  Plan p = plan(q);
  if (!p.full && now < q.front().ready_at + caps_.max_wait) return std::nullopt;
  std::vector<std::int64_t> ids;
  for (auto i : p.picks) ids.push_back(q[i].id);
  for (auto i = p.picks.rbegin(); i != p.picks.rend(); ++i)
    q.erase(q.begin() + static_cast<std::ptrdiff_t>(*i));
  if (q.empty()) lanes_.erase(it);
  return ids;
}

std::optional<BatchFormer::Clock::time_point> BatchFormer::due_at(std::string_view lane) const {
  auto it = lanes_.find(lane);
  if (it == lanes_.end() || it->second.empty()) return std::nullopt;
  const auto& first = it->second.front();
  if (plan(it->second).full) return first.ready_at;
  return first.ready_at + caps_.max_wait;
}

std::size_t BatchFormer::waiting(std::string_view lane) const {
  auto it = lanes_.find(lane);
  return it == lanes_.end() ? 0 : it->second.size();
}

std::size_t BatchFormer::waiting() const {
  std::size_t n = 0;
  for (const auto& [lane, q] : lanes_) n += q.size();
  return n;
}

std::vector<std::string> BatchFormer::lanes() const {
  std::vector<std::string> out;
  for (const auto& [lane, q] : lanes_) out.push_back(lane);
  return out;
}

}  // namespace fe::import
