using SemiSeg.Cli;

return Cli.Run(args);
