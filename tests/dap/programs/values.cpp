// Values a C++ developer expects to read in a debugger (issue 15): the DAP
// values test stops at the line marked `values` and compares what vmdbg shows with
// gdb's libstdc++ pretty printers on the same binary at the same line.
#include <array>
#include <cstdio>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace shop {
struct Item {
    std::string name;
    int count;
};

struct Special : Item {
    double discount;
};

template <typename T, int N> struct Tagged {
    T value;
    int tags[N];
};

class Basket {
public:
    int total() const { return static_cast<int>(items.size()); } // MARK:method
    std::vector<Item> items;
};
} // namespace shop

int main()
{
    std::string greeting = "hello world";
    std::string_view view = greeting;
    std::vector<int> numbers = {1, 2, 3};
    std::unique_ptr<int> owned = std::make_unique<int>(42);
    std::shared_ptr<int> shared = std::make_shared<int>(7);
    std::shared_ptr<int> shared2 = shared;
    shop::Basket basket;
    basket.items.push_back({"apple", 2});
    int n = basket.total();
    std::map<int, std::string> names = {{1, "one"}, {3, "three"}, {2, "two"}};
    std::set<int> primes = {7, 3, 5};
    std::optional<int> some = 5;
    std::optional<int> none;
    // 48 entries over libstdc++'s buckets, all in its one node chain.
    std::unordered_map<int, int> squares;
    for (int i = 4; i < 52; i++)
        squares[i] = i * i;
    std::variant<int, std::string> text = std::string("text");
    std::variant<int, std::string> number = 12;
    std::list<int> chain = {4, 5, 6};
    // 203 ints: more than one 512-byte buffer, grown at both ends.
    std::deque<int> queue;
    for (int i = 0; i < 200; i++)
        queue.push_back(i);
    for (int i = 0; i < 3; i++)
        queue.push_front(-i);
    std::array<int, 4> fixed = {9, 8, 7, 6};
    std::unique_ptr<shop::Item> item = std::make_unique<shop::Item>(shop::Item{"pear", 4});
    std::shared_ptr<shop::Item> sitem = std::make_shared<shop::Item>(shop::Item{"fig", 5});
    bool flag = true;
    int &count_ref = n;
    const shop::Item &first = basket.items[0];
    shop::Special special{{"plum", 3}, 0.5};
    shop::Tagged<short, 2> tagged{5, {1, 2}};
    std::printf("%s %zu %zu %d %d %ld %d %zu %zu %d %d %zu\n", greeting.c_str(), view.size(), numbers.size(), *owned, *shared,
                shared2.use_count(), n, names.size(), primes.size(), *some, none.has_value(), squares.size());
    // clang-format off
    std::printf("%zu %zu %zu %zu %zu %d %d %d %d %d %d %d\n", text.index(), number.index(), chain.size(), queue.size(), fixed.size(), item->count, sitem->count, flag, count_ref, first.count, special.count, tagged.value); // MARK:values
    // clang-format on
    return 0;
}
