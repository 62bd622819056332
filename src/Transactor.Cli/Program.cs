using System.Text;
using Transactor.Cli;

// Standard error is buffered (each malformed row is a line), and flushed by the commands when they end.
await using var error = new StreamWriter(Console.OpenStandardError(), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), bufferSize: 1 << 16);
var streams = new StandardStreams(Console.OpenStandardInput, Console.OpenStandardOutput, error, ErrorIsTerminal: !Console.IsErrorRedirected);
return await TransactorCommand.Create(streams).Parse(args).InvokeAsync();
