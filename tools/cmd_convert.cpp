// PLACEHOLDER: npcore convert is being written.
#include "tools/commands.h"
namespace npcore::tool {
void register_convert(CLI::App& app, int& status) { app.add_subcommand("convert", "(not yet available)")->callback([&status] { throw UsageError("convert: not yet available"); }); }
}  // namespace npcore::tool
