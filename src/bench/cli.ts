export async function benchMain(args: string[]): Promise<number> {
  console.log('nanogate bench: not built yet', args.length);
  return 1;
}
