// Values a C++ developer expects to read in a debugger (issue 15): the DAP
// values test stops at the line marked `values` and compares what vmdbg shows with
// gdb's libstdc++ pretty printers on the same binary at the same line.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace shop {
struct Item {
    std::string name;
    int count;
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
    std::printf("%s %zu %zu %d %d %ld %d\n", greeting.c_str(), view.size(), numbers.size(), *owned, *shared, shared2.use_count(), n); // MARK:values
    return 0;
}
