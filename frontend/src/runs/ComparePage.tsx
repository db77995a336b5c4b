export const ComparePage = () => <div className="page" />
