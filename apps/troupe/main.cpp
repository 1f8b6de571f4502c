// main: the troupe command line (placeholder).
int main() { return 0; }
