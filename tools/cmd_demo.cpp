// PLACEHOLDER: npcore demo is being written.
#include "tools/commands.h"
namespace npcore::tool {
void register_demo(CLI::App& app, int& status) { app.add_subcommand("demo", "(not yet available)")->callback([&status] { throw UsageError("demo: not yet available"); }); }
}  // namespace npcore::tool
