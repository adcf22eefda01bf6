// PLACEHOLDER: npcore bench is being written.
#include "tools/commands.h"
namespace npcore::tool {
void register_bench(CLI::App& app, int& status) { app.add_subcommand("bench", "(not yet available)")->callback([&status] { throw UsageError("bench: not yet available"); }); }
}  // namespace npcore::tool
