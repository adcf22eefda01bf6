// PLACEHOLDER: npcore run is being written.
#include "tools/commands.h"
namespace npcore::tool {
void register_run(CLI::App& app, int& status) { app.add_subcommand("run", "(not yet available)")->callback([&status] { throw UsageError("run: not yet available"); }); }
}  // namespace npcore::tool
